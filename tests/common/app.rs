//! The setting of deploy tests (a repository whose app is the reference app, a baton deploying
//! it) and talking to that app and to baton's commands the way the tests do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::repo::Repo;
use super::{BATON, Baton, BatonBuilder, Scratch, eventually, have_tool, http_get};

/// What a deploy test starts from: a scratch directory holding the app's repository (written
/// by `make_repo`), and the path of baton's state directory in it (baton creates it). None (the
/// test skips) without git.
pub fn site(
    tag: &str,
    make_repo: impl FnOnce(&Scratch) -> Repo,
) -> Option<(Scratch, Repo, PathBuf)> {
    if !have_tool("git") {
        return None;
    }
    let scratch = Scratch::new(tag);
    let repo = make_repo(&scratch);
    let state = scratch.path("state");
    Some((scratch, repo, state))
}

/// A `site` whose repository is a `hello_repo` with `extra` files.
pub fn hello_site(
    tag: &str,
    extra: &[(&str, &str)],
    executables: &[&str],
) -> Option<(Scratch, Repo, PathBuf)> {
    site(tag, |scratch| hello_repo(scratch, extra, executables))
}

/// A `hello_site` whose repository has an executable `build.sh`.
pub fn build_site(tag: &str, build_sh: &str) -> Option<(Scratch, Repo, PathBuf)> {
    hello_site(tag, &[("build.sh", build_sh)], &["build.sh"])
}

/// A baton that deploys `repo` (`--repo`) with `config` (`-c`), keeping its releases in `state`
/// and running each release's `./run.sh`: the setting of every deploy test.
pub fn deploying(repo: &Repo, state: &Path, config: &Path) -> BatonBuilder {
    BatonBuilder::new()
        .state_dir(state)
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .arg("-c")
        .arg(config.to_str().unwrap())
        .app(&["./run.sh"])
}

/// The `message=` the app answers with (the first line of the release's `hello.txt`).
pub fn message(baton: &Baton) -> String {
    let (_, body) = http_get(baton.addr, "/").unwrap();
    body.split("message=")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Waits until the app answers with `message=<text>`.
pub fn wait_message(baton: &Baton, text: &str) {
    eventually(
        Duration::from_secs(30),
        || format!("{text} never served:\n{}", baton.log_text()),
        || (message(baton) == text).then_some(()),
    );
}

/// `baton ARGS --control <this baton's socket>`.
pub fn baton_cmd(baton: &Baton, args: &[&str]) -> Output {
    Command::new(BATON)
        .args(args)
        .arg("--control")
        .arg(&baton.control)
        .output()
        .unwrap()
}

/// `baton history --json -n N`, parsed: the newest N entries of the deploy history.
pub fn history(baton: &Baton, n: usize) -> Vec<serde_json::Value> {
    let out = baton_cmd(baton, &["history", "--json", "-n", &n.to_string()]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A repository whose app is baton-hello (`run.sh`, named by path: the app's environment is an
/// allowlist) answering `message=v1`, plus `extra` files (`executables` among them get 0755).
pub fn hello_repo(scratch: &Scratch, extra: &[(&str, &str)], executables: &[&str]) -> Repo {
    let run_sh = format!("#!/bin/sh\nexec \"{}\" --idle-grace 100ms\n", super::HELLO);
    launcher_repo(scratch, &run_sh, extra, executables)
}

/// A repository whose app starts with `run_sh` (as `./run.sh`) and answers with its
/// `hello.txt` (`v1`), plus `extra` files (`executables` among them get 0755).
pub fn launcher_repo(
    scratch: &Scratch,
    run_sh: &str,
    extra: &[(&str, &str)],
    executables: &[&str],
) -> Repo {
    let mut files = vec![("run.sh", run_sh), ("hello.txt", "v1")];
    files.extend_from_slice(extra);
    let mut scripts = vec!["run.sh"];
    scripts.extend_from_slice(executables);
    Repo::new(scratch, &files, &scripts)
}
