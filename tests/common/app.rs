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
