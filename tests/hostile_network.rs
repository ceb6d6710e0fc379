//! The webhook port under attack from the network (127.0.0.x only): connections that hold slots
//! without making progress, and HTTP/2 floods of large unsigned (or forged) bodies. Each case
//! checks that baton's memory stays bounded, that the app keeps serving and that a real signed
//! push still gets through. And the control socket against other local users and runaway
//! clients.
//!
//! All of 127.0.0.0/8 is loopback on Linux, so binding the client to 127.0.0.2… plays several
//! peer addresses, one per attacker host.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::files::write_private;
use common::hostile::rss_mib;
use common::*;

const SECRET: &str = "network-test-secret-0123456789";
/// What GitHub's largest delivery may be, and what the attack streams claim to send.
const BODY: usize = 25 * 1024 * 1024;
/// Stands for a stream the server reset with REFUSED_STREAM: over its streams-per-connection
/// cap (the client opens streams before it has the server's SETTINGS).
const REFUSED: u16 = 1;
/// Stands for a stream the server left unanswered for 30 s (its body deadline is 10 s).
const HUNG: u16 = 2;
/// Stands for a stream lost with its connection, which the server may close (GOAWAY) when a
/// client resets streams faster than it lets them be served.
const LOST: u16 = 0;
/// baton's IDLE_TIMEOUT (src/webhook/mod.rs).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

fn webhook_baton(tag: &str) -> (Scratch, Baton) {
    let scratch = Scratch::new(tag);
    let secret = scratch.path("secret");
    write_private(&secret, SECRET);
    let baton = BatonBuilder::new().webhook(&secret).start();
    (scratch, baton)
}

/// A TCP connection to `to` from the loopback address 127.0.0.`host`.
async fn connect_from(host: u8, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((Ipv4Addr::new(127, 0, 0, host), 0).into())
        .unwrap();
    socket.connect(to).await.unwrap()
}

fn connect_from_blocking(host: u8, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(connect_from(host, to)).into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Samples the RSS of `pid` every 20 ms until dropped; `peak()` is the largest seen.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: i32) -> RssWatch {
        let (peak, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_mib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RssWatch {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/2 connection from 127.0.0.`host` that POSTs `streams` bodies of [`BODY`] bytes to
/// /webhook, with `signature` as its `X-Hub-Signature-256` (none when `None`), as fast as the
/// server lets it. Returns how many streams got each status (or [`REFUSED`], [`HUNG`], [`LOST`]).
async fn h2_flood(
    host: u8,
    to: SocketAddr,
    streams: usize,
    signature: Option<String>,
) -> std::collections::BTreeMap<u16, usize> {
    static CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];
    let tcp = connect_from(host, to).await;
    let mut statuses = std::collections::BTreeMap::new();
    let handshake = tokio::time::timeout(Duration::from_secs(20), h2::client::handshake(tcp));
    let Ok(Ok((mut client, connection))) = handshake.await else {
        statuses.insert(LOST, streams);
        return statuses;
    };
    tokio::spawn(connection);
    let mut answers = Vec::new();
    for i in 0..streams {
        client = match tokio::time::timeout(Duration::from_secs(20), client.ready()).await {
            Ok(Ok(c)) => c,
            _ => break, // the connection is gone, or no stream slot came free: lost
        };
        let mut request = hyper::Request::post(format!("http://{to}/webhook"))
            .header("x-github-event", "push")
            .header("content-type", "application/json")
            .header("content-length", BODY.to_string());
        if let Some(sig) = &signature {
            request = request.header("x-hub-signature-256", sig.as_str());
        }
        let Ok((response, mut body)) = client.send_request(request.body(()).unwrap(), false) else {
            break;
        };
        answers.push(tokio::spawn(async move {
            // Sends as the server's windows allow; once the stream is answered or reset this
            // stops, and only the response (or its error) decides the outcome.
            let sending = async {
                for i in 0..BODY / CHUNK.len() {
                    let last = i + 1 == BODY / CHUNK.len();
                    body.reserve_capacity(CHUNK.len());
                    let Some(Ok(_)) = std::future::poll_fn(|cx| body.poll_capacity(cx)).await
                    else {
                        break;
                    };
                    if body.send_data(Bytes::from_static(&CHUNK), last).is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(30)) => HUNG,
                r = response => match r {
                    Ok(r) => r.status().as_u16(),
                    Err(e) if e.reason() == Some(h2::Reason::REFUSED_STREAM) => REFUSED,
                    Err(_) => LOST,
                },
                () = sending => LOST,
            }
        }));
        if i == 0 {
            // Like h2load: the first answer means the server's SETTINGS (its stream limit)
            // arrived, so the rest are opened as fast as that limit lets them be.
            let first = answers.pop().map(|a| async { a.await.unwrap_or(LOST) });
            if let Some(first) = first {
                *statuses.entry(first.await).or_default() += 1;
            }
        }
    }
    let unsent = streams - answers.len() - statuses.values().sum::<usize>();
    for answer in answers {
        *statuses.entry(answer.await.unwrap_or(LOST)).or_default() += 1;
    }
    if unsent > 0 {
        *statuses.entry(LOST).or_default() += unsent;
    }
    statuses
}

/// 32 connections (8 source addresses × 4) at once, each flooding 100 streams.
fn flood(to: SocketAddr, signature: Option<String>) -> std::collections::BTreeMap<u16, usize> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let attacks: Vec<_> = (0..32u8)
            .map(|i| tokio::spawn(h2_flood(2 + i / 4, to, 100, signature.clone())))
            .collect();
        let mut total = std::collections::BTreeMap::new();
        for attack in attacks {
            let statuses = tokio::time::timeout(Duration::from_secs(120), attack)
                .await
                .expect("an attacking connection finished within 2 minutes")
                .unwrap();
            for (status, n) in statuses {
                *total.entry(status).or_default() += n;
            }
        }
        total
    })
}

fn real_push_is_accepted(baton: &Baton, delivery: &str) {
    let hook = baton.webhook.unwrap();
    let (status, text) = github_push(hook, SECRET.as_bytes(), delivery, &"cd".repeat(20));
    assert_eq!(status, 202, "a real push is accepted: {text}");
}

#[test]
fn http2_floods_of_unsigned_or_forged_bodies_keep_baton_small() {
    let (_scratch, baton) = webhook_baton("h2-flood");
    let hook = baton.webhook.unwrap();
    let rss = RssWatch::start(baton.pid());

    // Unsigned: refused from the headers alone, before a body byte is buffered.
    let statuses = flood(hook, None);
    let count = |statuses: &std::collections::BTreeMap<u16, usize>, wanted: &[u16]| -> usize {
        wanted
            .iter()
            .map(|s| statuses.get(s).copied().unwrap_or(0))
            .sum()
    };
    assert_eq!(
        count(&statuses, &[401, REFUSED, LOST]),
        32 * 100,
        "every unsigned stream is refused: {statuses:?}"
    );
    assert!(
        count(&statuses, &[401]) > 32 * 50,
        "mostly 401: {statuses:?}"
    );
    assert!(
        rss.peak() > 0 && rss.peak() < 64,
        "RSS under 32 × 100 unsigned 25 MB streams: {} MiB",
        rss.peak()
    );
    real_push_is_accepted(&baton, "after-unsigned");
    let unsigned_peak = rss.peak();

    // Forged signatures pass the header check, so bodies are read, but only as much as the
    // shared budget holds; the rest are told to come back later. A body that holds the budget
    // but arrives too slowly (all 32 connections compete) gets 408. baton may grow by that
    // budget (a 25 MB delivery is legitimate) and the HTTP/2 windows, not by what is offered.
    drop(rss);
    let before = rss_mib(baton.pid());
    let rss = RssWatch::start(baton.pid());
    let forged = format!("sha256={}", "0".repeat(64));
    let statuses = flood(hook, Some(forged));
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "over the body budget means 503: {statuses:?}"
    );
    assert_eq!(
        count(&statuses, &[401, 408, 503, REFUSED, LOST]),
        32 * 100,
        "401, 408 or 503 (or a refused or lost stream), nothing else: {statuses:?}"
    );
    let budget_mib = 32;
    let windows_mib = 32 * 256 / 1024;
    assert!(
        before > 0 && rss.peak() < before + budget_mib + windows_mib,
        "RSS under 32 × 100 forged 25 MB streams: {} MiB, from {before} MiB",
        rss.peak()
    );
    real_push_is_accepted(&baton, "after-forged");
    assert_eq!(http_get(baton.addr, "/").unwrap().0, 200, "the app serves");
    eprintln!(
        "peak RSS: {unsigned_peak} MiB unsigned, {} MiB forged (from {before} MiB); forged: {statuses:?}",
        rss.peak()
    );
    drop(rss);
    assert!(baton.stop().success());
}

/// Waits (bounded) until the server closes `stream`: true when it did.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. the server's SETTINGS or GOAWAY
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_connections_cannot_lock_out_a_real_push() {
    let (_scratch, baton) = webhook_baton("lockout");
    let hook = baton.webhook.unwrap();
    let rss = RssWatch::start(baton.pid());
    // The HTTP/2 client preface and an empty SETTINGS frame, then nothing.
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let open = |host: u8, i: usize| {
        let mut s = connect_from_blocking(host, hook);
        match i % 3 {
            0 => {}
            1 => s.write_all(b"P").unwrap(),
            _ => s.write_all(preface).unwrap(),
        }
        s
    };

    // One address opens 20: it keeps 16 (half the slots), the rest are closed at once, and a
    // real push from another address is served without waiting for anyone's timeout.
    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..20).map(|i| open(2, i)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = held
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(200)))
        .filter(|&closed| closed)
        .count();
    assert_eq!(refused, 4, "a peer over its cap of 16 is refused at once");
    real_push_is_accepted(&baton, "beside-one-peer");
    assert!(
        started.elapsed() < IDLE_TIMEOUT,
        "served before any idle timeout: {:?}",
        started.elapsed()
    );

    // A second address takes the other 16 slots; the real push waits in the accept queue until
    // the idle connections are closed, then gets through.
    held.extend((0..16).map(|i| open(3, i)));
    let started = Instant::now();
    real_push_is_accepted(&baton, "after-lockout");
    let waited = started.elapsed();
    assert!(
        waited < IDLE_TIMEOUT + Duration::from_secs(10),
        "the push waited {waited:?}"
    );
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, IDLE_TIMEOUT + Duration::from_secs(5)),
            "idle connection {i} was closed by baton"
        );
    }
    assert!(rss.peak() < 64, "RSS stays bounded: {} MiB", rss.peak());
    assert_eq!(http_get(baton.addr, "/").unwrap().0, 200, "the app serves");
    eprintln!("the push waited {waited:?} behind 32 idle connections");
    drop(rss);
    assert!(baton.stop().success());
}

/// `baton status` against `control` as uid `nobody` with primary group `gid` and supplementary
/// `groups`: (exit success, stdout + stderr).
fn status_as_nobody(control: &std::path::Path, gid: u32, groups: &[u32]) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let groups: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    let mut cmd = std::process::Command::new(BATON);
    cmd.args(["status", "--timeout", "5s", "--control"])
        .arg(control);
    // SAFETY: between fork and exec the child only makes these three syscalls, which allocate
    // nothing and take no locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(common::hostile::NOBODY))?;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_control_socket_admits_root_its_uid_and_its_group_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !common::hostile::is_root("connecting to the control socket as another uid") {
        return;
    }
    const NOGROUP: u32 = 65_534;
    // `daemon` (gid 1) has no members on Debian, so `nobody` is not in it.
    let daemon = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();

    // Default: the socket is 0600, so another uid cannot even connect.
    let baton = BatonBuilder::new().start();
    let meta = std::fs::metadata(&baton.control).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let (ok, text) = status_as_nobody(&baton.control, NOGROUP, &[NOGROUP]);
    assert!(!ok && text.contains("ermission denied"), "{text}");
    assert!(baton.stop().success());

    // With a group the socket is 0660 and the group's; a process of that group may use it.
    let baton = BatonBuilder::new()
        .arg("--control-group")
        .arg("daemon")
        .start();
    let meta = std::fs::metadata(&baton.control).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), daemon, "the socket file belongs to the group");
    let (ok, text) = status_as_nobody(&baton.control, daemon, &[]);
    assert!(ok, "a process whose gid is the group's may connect: {text}");

    // A process that passes the file mode only through a supplementary group the user database
    // does not give it is refused by the SO_PEERCRED check, with a reply and a log line.
    let (ok, text) = status_as_nobody(&baton.control, NOGROUP, &[daemon]);
    assert!(!ok, "refused: {text}");
    assert!(
        text.contains("uid 65534 may not use this control socket"),
        "{text}"
    );
    eventually(
        Duration::from_secs(5),
        || baton.log_text(),
        || {
            baton
                .log_text()
                .contains("control socket: refused a connection: uid 65534")
                .then_some(())
        },
    );

    // 16 idle connections at once are the limit; the next is told so at once, and once they
    // are gone (baton waits 10 s for a command) the socket answers again.
    let idle: Vec<_> = (0..16)
        .map(|_| std::os::unix::net::UnixStream::connect(&baton.control).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::os::unix::net::UnixStream::connect(&baton.control).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(
        answer.contains("control connections are open"),
        "{answer:?}"
    );
    drop(idle);
    assert_eq!(baton.status().unwrap()["state"], "serving");
    assert!(baton.stop().success());
}
