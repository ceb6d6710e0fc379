//! Talking to the reference app and to baton's commands the way deploy tests do.

use std::process::{Command, Output};
use std::time::Duration;

use super::{BATON, Baton, eventually, http_get};

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

/// A repository whose app is baton-hello (`run.sh`, named by path: the app's environment is an
/// allowlist) answering `message=v1`, plus `extra` files (`executables` among them get 0755).
pub fn hello_repo(
    scratch: &super::Scratch,
    extra: &[(&str, &str)],
    executables: &[&str],
) -> super::repo::Repo {
    let run_sh = format!("#!/bin/sh\nexec \"{}\" --idle-grace 100ms\n", super::HELLO);
    let mut files = vec![("run.sh", run_sh.as_str()), ("hello.txt", "v1")];
    files.extend_from_slice(extra);
    let mut scripts = vec!["run.sh"];
    scripts.extend_from_slice(executables);
    super::repo::Repo::new(scratch, &files, &scripts)
}
