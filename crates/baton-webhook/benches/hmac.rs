//! HMAC-SHA256 verification throughput next to raw SHA-256 of the same `sha2` crate.
//!
//! Three columns per body size:
//! - `sha256`: `Sha256::digest` of the body, the ceiling;
//! - `hmac`: verifying a tag the way the crate does it: clone an HMAC state that already
//!   absorbed the key (as `Secret` keeps it), feed the body, `verify_slice`;
//! - `evaluate`: the crate's whole path for a signed GitHub delivery of an ignored event
//!   (header lookup, hex decoding, verification, verdict), i.e. the cost of a delivery before
//!   any JSON is parsed.
//!
//! Plain `harness = false` binary (no criterion). Run:
//! `CARGO_TARGET_DIR=/work/target-webhook cargo bench -p baton-webhook --bench hmac`

use std::hint::black_box;
use std::time::{Duration, Instant};

use baton_webhook::{Config, Request, Secret, Verdict, evaluate, sign_github};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const SECRET: &str = "a-high-entropy-webhook-secret-for-benching";
/// Bytes hashed per measurement: enough to be stable, bounded so the bench ends in about a
/// minute on a busy two-core machine.
const BYTES_PER_RUN: usize = 256 * 1024 * 1024;
const ROUNDS: usize = 3;

fn main() {
    let Ok(secret) = Secret::new(SECRET) else {
        return eprintln!("bench secret refused");
    };
    let config = Config::new(secret);
    let Ok(keyed) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else {
        return eprintln!("HMAC refused the key");
    };
    println!("size     iterations  sha256 MB/s  hmac MB/s (vs sha256)  evaluate MB/s (vs sha256)");
    for (label, size) in [
        ("1 KiB", 1024),
        ("64 KiB", 64 * 1024),
        ("25 MiB", 25 * 1024 * 1024),
    ] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let signature = sign_github(SECRET.as_bytes(), &body);
        let tag = keyed.clone().chain_update(&body).finalize().into_bytes();
        let headers: [(&str, &[u8]); 3] = [
            ("X-GitHub-Event", b"issues"),
            ("Content-Type", b"application/json"),
            ("X-Hub-Signature-256", signature.as_bytes()),
        ];
        let request = Request::post("/webhook", &headers, &body);
        // Guards against measuring a rejection path by mistake.
        if !matches!(evaluate(&config, &request), Verdict::Ignored { .. }) {
            return eprintln!("bench request was not authenticated");
        }

        let iterations = (BYTES_PER_RUN / size).max(8);
        // Best of a few interleaved rounds: the machine is shared, so the fastest run is the
        // least disturbed one, and interleaving spreads any disturbance over all columns.
        let (mut sha, mut mac, mut full) = (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            sha = sha.min(time(iterations, || {
                black_box(Sha256::digest(black_box(&body)));
            }));
            mac = mac.min(time(iterations, || {
                let state = black_box(&keyed).clone();
                black_box(
                    state
                        .chain_update(black_box(&body))
                        .verify_slice(&tag)
                        .is_ok(),
                );
            }));
            full = full.min(time(iterations, || {
                black_box(evaluate(black_box(&config), black_box(&request)));
            }));
        }
        let (sha, mac, full) = (
            rate(size, iterations, sha),
            rate(size, iterations, mac),
            rate(size, iterations, full),
        );
        println!(
            "{label:<7}  {iterations:>10}  {sha:>11.1}  {mac:>9.1} ({:>5.1} %)  {full:>13.1} ({:>5.1} %)",
            100.0 * mac / sha,
            100.0 * full / sha,
        );
    }
}

fn time(iterations: usize, mut work: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        work();
    }
    start.elapsed()
}

/// Megabytes (10^6 bytes) per second.
fn rate(size: usize, iterations: usize, elapsed: Duration) -> f64 {
    (size * iterations) as f64 / elapsed.as_secs_f64() / 1e6
}
