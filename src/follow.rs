//! `--follow` for `baton deploy`, `reload` and `rollback`: while the command runs, the control
//! connection carries progress lines (`{"progress": …}`) before the usual one-line reply, and
//! the client prints each with the time elapsed since it asked.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;

use crate::control::{self, Command, Reply};
use crate::deploy::progress::{self, Progress};
use crate::trigger::Dispatcher;

/// How often a followed reload looks at the supervisor's state (reloads have no pipeline to
/// report from).
const STATE_POLL: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct Line {
    progress: Progress,
}

/// Runs `command`, streaming progress to `stream` until its reply, which ends the exchange.
pub async fn serve(stream: &mut UnixStream, command: Command, front: &Dispatcher) {
    let watch_state = matches!(command, Command::Reload);
    let mut events = progress::subscribe();
    let job = control::execute(command, front);
    tokio::pin!(job);
    let mut poll = tokio::time::interval(STATE_POLL);
    let mut last_state = None;
    let mut connected = true;
    let reply = loop {
        // Events first: those the job emitted before it answered are all buffered by then, so
        // they are sent before the reply.
        let event = tokio::select! {
            biased;
            event = events.recv() => match event {
                Ok(event) => event,
                Err(RecvError::Lagged(count)) => Progress::Missed { count },
                Err(RecvError::Closed) => continue,
            },
            reply = &mut job => break reply,
            _ = poll.tick(), if watch_state => {
                let Ok(status) = front.supervisor_status().await else { continue };
                let state = status.state.to_string();
                if last_state.as_ref() == Some(&state) {
                    continue;
                }
                last_state = Some(state.clone());
                Progress::State { state }
            }
        };
        if connected {
            connected = send(stream, &Line { progress: event }).await;
        }
    };
    // A reload's phases are known only from its report.
    if let (true, Reply::Reloaded(r)) = (connected, &reply) {
        let mut phases = vec![("start", r.cutover_ms)];
        if r.probation_ms > 0.0 {
            phases.push(("probation", r.probation_ms));
        }
        for (phase, ms) in phases {
            let progress = Progress::PhaseDone {
                phase: phase.into(),
                ms: ms.round() as u64,
            };
            connected = send(stream, &Line { progress }).await;
        }
    }
    if connected {
        send(stream, &reply).await;
    }
}

/// Writes one JSON line; false once the client is gone (the command still runs to its end).
async fn send(stream: &mut UnixStream, value: &impl Serialize) -> bool {
    let mut out = serde_json::to_string(value).unwrap_or_else(|_| "{\"ok\":false}".into());
    out.push('\n');
    stream.write_all(out.as_bytes()).await.is_ok()
}

/// The client side: sends `command` to be followed, prints progress as it comes, returns the
/// reply.
pub async fn call(path: &Path, command: Command, timeout: Duration) -> Result<Reply, String> {
    let started = Instant::now();
    let talk = async {
        let request = Command::Follow {
            of: Box::new(command),
        };
        let stream = crate::control::send_command(path, &request).await?;
        let mut lines = BufReader::new(stream).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| format!("cannot read baton's answer: {e}"))?
        {
            if let Ok(Line { progress }) = serde_json::from_str::<Line>(&line) {
                print(started.elapsed(), &progress);
                continue;
            }
            return serde_json::from_str::<Reply>(&line)
                .map_err(|_| "baton sent an answer it does not understand".to_string());
        }
        Err("baton closed the connection without an answer".to_string())
    };
    tokio::time::timeout(timeout, talk)
        .await
        .map_err(|_| format!("no answer from baton within {timeout:?}"))?
}

fn print(elapsed: Duration, progress: &Progress) {
    let at = format!("[{:>6.1}s]", elapsed.as_secs_f64());
    match progress {
        Progress::Job { description } => println!("{at} {description}"),
        Progress::Phase { phase } => println!("{at} {phase} …"),
        Progress::PhaseDone { phase, ms } => println!("{at} {phase} done in {ms} ms"),
        Progress::Output { step, line } => println!("{at} {step} | {line}"),
        Progress::State { state } => println!("{at} {state}"),
        Progress::Missed { count } => println!("{at} ({count} progress lines missed)"),
    }
}
