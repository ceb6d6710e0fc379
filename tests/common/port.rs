//! Ports for the servers tests start, chosen so that a parallel test cannot take them first.
//!
//! A port from `bind("127.0.0.1:0")` is ephemeral: between the test reading it and baton binding
//! it, the kernel may hand the same port to an outgoing connection of a load test running in
//! parallel, and baton fails with EADDRINUSE. Ports below the ephemeral range are never handed
//! out by the kernel, and one counter per process keeps this process's threads apart; the start
//! is spread by pid so that test binaries (and lingering children of one) do not collide.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const LOW: u32 = 10_000;

/// A currently unused 127.0.0.1 port below the kernel's ephemeral range.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_low().max(LOW + 1_000);
    let span = high - LOW;
    let start = std::process::id() * 7_919 % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{high}");
}

/// The first port of `net.ipv4.ip_local_port_range` (32768 when unreadable).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
