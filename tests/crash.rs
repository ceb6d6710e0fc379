//! baton killed without draining, run by hand: its generation keeps serving, and a new baton
//! started on the same runtime directory takes the port over from it and drains it.

mod common;

use std::time::Duration;

use baton_load::Mode;
use common::load::{Background, assert_no_failures};
use common::*;

#[test]
fn a_new_baton_takes_over_from_the_generation_a_killed_baton_left_serving() {
    let runtime = Scratch::new("crash-runtime");
    let first = BatonBuilder::new().runtime_dir(&runtime.0).start();
    let addr = first.addr;
    let orphan = first.app_pid();
    let load = Background::start(addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // Nobody supervises it, but it serves.
    assert!(alive(orphan));
    assert_eq!(http_get(addr, "/").unwrap().0, 200);

    let second = BatonBuilder::new()
        .runtime_dir(&runtime.0)
        .addr(addr)
        .start();
    let log = second.log_text();
    assert!(log.contains("still serves"), "{log}");
    assert!(
        log.contains("took 127.0.0.1"),
        "the port was taken over: {log}"
    );
    eventually(
        Duration::from_secs(30),
        || format!("the orphan was never drained:\n{}", second.log_text()),
        || (!alive(orphan)).then_some(()),
    );
    let status = second.status().unwrap();
    assert_eq!(status["generation"], 2, "numbers go on: {status}");
    assert_no_failures(&load.finish(), 100, &second.log_text());
    assert_eq!(second.stop().code(), Some(0));
}
