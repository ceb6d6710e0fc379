//! Connection steering: new connections go to the newest generation *before* the old one is told
//! to drain, so an app whose shutdown closes connections it accepted but had not read yet (the
//! classic keep-alive/graceful-shutdown race, e.g. uvicorn) has nothing half-accepted then.
//!
//! Each TCP app socket (the *home* socket, from systemd or bound by baton) gets one sibling in
//! its SO_REUSEPORT group, created by baton. Generations alternate between the two *slots*
//! (0: home, 1: sibling): a new generation takes the slot the serving one does not use. A
//! one-instruction classic-BPF program held on the group sends every new connection to the
//! serving generation's slot; at the handoff baton points it at the new one, waits until the old
//! slot's accept queue has been empty for the settle time, and only then signals the drain.
//! The home socket never leaves the group while baton runs, and the sibling leaves only when a
//! generation on it dies mid-handoff (see [`Steering::rescue`]); being the last member, it
//! shifts no other, so the slot *is* the member's index.
//!
//! Where that is impossible (a unix socket, a kernel without reuseport programs, a socket baton
//! may not add siblings to), the socket is shared by all generations as before, and baton says so
//! once at start-up and in `baton status`.

mod kernel;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::listen::Socket;

pub use kernel::migrate_req;

/// How long the settle may take beyond the quiet time before the old generation is told to
/// drain anyway (an old generation that stopped accepting must not hold a handoff up).
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Steering as configured.
#[derive(Debug, Clone, Copy)]
pub struct SteerSettings {
    /// Steer at all (`[app] steer`).
    pub enabled: bool,
    /// How long the old slot's accept queue must have been empty before the drain signal.
    pub settle: Duration,
}

impl SteerSettings {
    /// No steering: every generation shares the sockets (tests, baton-kit).
    pub fn off() -> SteerSettings {
        SteerSettings {
            enabled: false,
            settle: Duration::ZERO,
        }
    }
}

/// Where this baton's steering starts from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A fresh start: nothing serves yet.
    Fresh,
    /// An upgraded image: its siblings were passed on, and the serving generation uses `slot`.
    Resumed {
        /// The serving generation's slot.
        slot: usize,
    },
    /// After a crash: generations of the dead baton still serve, `slot` being the last one's,
    /// and hold group members this baton does not know. No sibling is made until they are gone.
    TakingOver {
        /// How many orphaned generations hold members.
        orphans: usize,
        /// The slot the last orphan served on.
        slot: usize,
    },
}

/// What `baton status` shows for one app socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketSteering {
    /// The socket's name (LISTEN_FDNAMES).
    pub name: String,
    /// Where it came from (address or systemd fd).
    pub origin: String,
    /// True when new connections are steered to the newest generation before a drain.
    pub steered: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

enum Mode {
    /// In a reuseport group with (once made) a sibling baton created.
    On { sibling: Option<OwnedFd> },
    /// Shared by all generations, for this reason.
    Off(String),
}

struct AppSocket {
    home: Socket,
    mode: Mode,
}

/// The app sockets and where new connections go. Shared by the supervisor and the upgrade.
pub struct Steering {
    sockets: Mutex<Vec<AppSocket>>,
    /// The slot new connections go to.
    target: AtomicUsize,
    settle: Duration,
    /// Orphaned generations (of a crashed baton) that may still hold group members.
    foreign: AtomicUsize,
}

impl Steering {
    /// Sets steering up on the app's sockets; `siblings` are those an upgraded image passed on
    /// (by name). Logs once, per socket, whether it is steered and why not.
    pub fn new(
        homes: Vec<Socket>,
        mut siblings: Vec<Socket>,
        settings: &SteerSettings,
        origin: Origin,
    ) -> Steering {
        let (target, foreign) = match origin {
            Origin::Fresh => (0, 0),
            Origin::Resumed { slot } => (slot, 0),
            Origin::TakingOver { orphans, slot } => (slot, orphans),
        };
        let sockets = homes
            .into_iter()
            .map(|home| {
                let passed = siblings
                    .iter()
                    .position(|s| s.name == home.name)
                    .map(|i| siblings.remove(i).fd);
                let mode = if !settings.enabled {
                    Mode::Off("turned off ([app] steer = false)".into())
                } else if !kernel::is_tcp_listener(home.fd.as_fd()) {
                    Mode::Off("not a TCP socket (only TCP has reuseport groups)".into())
                } else {
                    match set_up(&home, passed, origin, target) {
                        Ok(sibling) => Mode::On { sibling },
                        Err(e) => Mode::Off(e.to_string()),
                    }
                };
                match &mode {
                    Mode::On { .. } => tracing::info!(
                        "socket {} ({}): new connections go to the newest generation before the old one drains",
                        home.name,
                        home.origin
                    ),
                    Mode::Off(why) => tracing::warn!(
                        "socket {} ({}): no connection steering: {why}; an old generation takes new connections until it is told to drain",
                        home.name,
                        home.origin
                    ),
                }
                AppSocket { home, mode }
            })
            .collect();
        Steering {
            sockets: Mutex::new(sockets),
            target: AtomicUsize::new(target),
            settle: settings.settle,
            foreign: AtomicUsize::new(foreign),
        }
    }

    /// The slot new connections go to now.
    pub fn target(&self) -> usize {
        self.target.load(Ordering::SeqCst)
    }

    /// Duplicates of the sockets a generation on `slot` gets, and the slot it really is on:
    /// slot 0 when the siblings cannot be made yet (an orphan still holds members).
    pub fn sockets_for(&self, slot: usize) -> io::Result<(usize, Vec<Socket>)> {
        let mut sockets = self.lock();
        let mut slot = slot.min(1);
        let missing = sockets
            .iter()
            .any(|s| matches!(s.mode, Mode::On { sibling: None }));
        if slot == 1 && missing {
            if self.foreign.load(Ordering::SeqCst) > 0 {
                tracing::info!(
                    "the generation of the baton before this one still serves: the next one shares its sockets"
                );
                slot = 0;
            } else {
                for s in sockets.iter_mut() {
                    if let Mode::On {
                        sibling: sibling @ None,
                    } = &mut s.mode
                    {
                        match kernel::sibling(s.home.fd.as_fd()) {
                            Ok(fd) => *sibling = Some(fd),
                            Err(e) => {
                                tracing::warn!(
                                    "socket {}: cannot add a sibling, no connection steering from now on: {e}",
                                    s.home.name
                                );
                                s.mode = Mode::Off(format!("cannot add a sibling: {e}"));
                            }
                        }
                    }
                }
            }
        }
        let copies = sockets
            .iter()
            .map(|s| match (&s.mode, slot) {
                (Mode::On { sibling: Some(sib) }, 1) => s.home.with_fd(sib.try_clone()?),
                _ => s.home.try_clone(),
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((slot, copies))
    }

    /// Sends new connections to the generation on `slot`.
    pub fn steer(&self, slot: usize) {
        if self.target.swap(slot, Ordering::SeqCst) == slot {
            return;
        }
        for s in self.lock().iter() {
            if let Mode::On { .. } = s.mode
                && let Err(e) = kernel::steer_to(s.home.fd.as_fd(), slot as u32)
            {
                tracing::error!("socket {}: cannot steer new connections: {e}", s.home.name);
            }
        }
    }

    /// Waits until the accept queues of `slot` have been empty for the settle time (bounded):
    /// then the generation there has taken everything steered to it before.
    pub async fn settle(&self, slot: usize) {
        let members: Vec<OwnedFd> = self
            .lock()
            .iter()
            .filter_map(|s| match (&s.mode, slot) {
                (Mode::On { .. }, 0) => s.home.fd.try_clone().ok(),
                (Mode::On { sibling: Some(sib) }, 1) => sib.try_clone().ok(),
                _ => None,
            })
            .collect();
        if members.is_empty() {
            return;
        }
        let began = Instant::now();
        let mut empty_since: Option<Instant> = None;
        loop {
            let queued: u32 = members
                .iter()
                .map(|m| kernel::accept_queue(m.as_fd()).unwrap_or(0))
                .sum();
            let now = Instant::now();
            if queued > 0 {
                empty_since = None;
            } else if now - *empty_since.get_or_insert(now) >= self.settle {
                return;
            }
            if began.elapsed() >= self.settle + SETTLE_LIMIT {
                tracing::warn!(
                    "{queued} connections still wait for the old generation after {}: draining it anyway",
                    crate::duration::format(began.elapsed())
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Before draining a crashed baton's generation: its members are not ours to watch, so
    /// the settle is the quiet time alone.
    pub async fn settle_foreign(&self) {
        if self.is_steered() {
            tokio::time::sleep(self.settle).await;
        }
    }

    /// A crashed baton's generation is gone (its members with it).
    pub fn foreign_gone(&self) {
        let _ = self
            .foreign
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// The generation on `slot` died and new connections go elsewhere now: what waits in its
    /// queues would wait for nobody. The sibling leaves the group (its queue moves on with
    /// `tcp_migrate_req`, else is reset; a new sibling is made when needed); the home socket
    /// stays, and what waits on it is closed at once.
    pub fn rescue(&self, slot: usize) {
        for s in self.lock().iter_mut() {
            let Mode::On { sibling } = &mut s.mode else {
                continue;
            };
            let (what, lost) = match slot {
                0 => ("closed", kernel::refuse_queued(s.home.fd.as_fd())),
                _ => match sibling.take() {
                    Some(sib) => {
                        let queued = kernel::accept_queue(sib.as_fd()).unwrap_or(0) as usize;
                        if let Err(e) = kernel::leave_group(sib) {
                            tracing::warn!("socket {}: {e}", s.home.name);
                        }
                        let fate = if migrate_req() == Some(true) {
                            "moved on"
                        } else {
                            "reset"
                        };
                        (fate, queued)
                    }
                    None => continue,
                },
            };
            if lost > 0 {
                tracing::warn!(
                    "socket {}: {lost} connections waiting for a generation that died were {what}",
                    s.home.name
                );
            }
        }
    }

    /// Duplicates of the app's sockets as systemd passed them or baton bound them, in order,
    /// for an upgraded image.
    pub fn homes(&self) -> io::Result<Vec<Socket>> {
        self.lock().iter().map(|s| s.home.try_clone()).collect()
    }

    /// Duplicates of the siblings (named after their home socket), for an upgraded image.
    pub fn siblings(&self) -> io::Result<Vec<Socket>> {
        self.lock()
            .iter()
            .filter_map(|s| match &s.mode {
                Mode::On { sibling: Some(sib) } => Some((s, sib)),
                _ => None,
            })
            .map(|(s, sib)| s.home.with_fd(sib.try_clone()?))
            .collect()
    }

    /// Per socket: steered or not, and why not.
    pub fn report(&self) -> Vec<SocketSteering> {
        self.lock()
            .iter()
            .map(|s| SocketSteering {
                name: s.home.name.clone(),
                origin: s.home.origin.clone(),
                steered: matches!(s.mode, Mode::On { .. }),
                reason: match &s.mode {
                    Mode::On { .. } => None,
                    Mode::Off(why) => Some(why.clone()),
                },
            })
            .collect()
    }

    /// True when at least one socket is steered.
    pub fn is_steered(&self) -> bool {
        self.lock()
            .iter()
            .any(|s| matches!(s.mode, Mode::On { .. }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AppSocket>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens `home`'s group and, on a fresh start, makes its sibling and points the program at
/// slot 0. After a crash the program still points where the orphan serves: it stays.
fn set_up(
    home: &Socket,
    passed: Option<OwnedFd>,
    origin: Origin,
    target: usize,
) -> io::Result<Option<OwnedFd>> {
    let home_fd = home.fd.as_fd();
    kernel::open_group(home_fd).map_err(|e| with_context("cannot join its group", e))?;
    match origin {
        Origin::TakingOver { .. } => Ok(None),
        Origin::Resumed { .. } if passed.is_some() => {
            kernel::steer_to(home_fd, target as u32)
                .map_err(|e| with_context("the kernel refused a reuseport program", e))?;
            Ok(passed)
        }
        // Resumed from a baton that did not steer: as on a fresh start.
        Origin::Resumed { .. } | Origin::Fresh => {
            // A group exists only once a member listened with SO_REUSEPORT on: attach first
            // when it does (no moment without a program), else once the sibling made it.
            let attached = kernel::steer_to(home_fd, 0).is_ok();
            let sibling =
                kernel::sibling(home_fd).map_err(|e| with_context("cannot add a sibling", e))?;
            if attached {
                return Ok(Some(sibling));
            }
            if let Err(e) = kernel::steer_to(home_fd, 0) {
                let _ = kernel::leave_group(sibling);
                return Err(with_context("the kernel refused a reuseport program", e));
            }
            // In the moment before the program, the kernel's hash may have sent a connection
            // to the sibling, where no generation will look for a while: start it afresh.
            if kernel::accept_queue(sibling.as_fd()).unwrap_or(0) > 0 {
                let _ = kernel::leave_group(sibling);
                return Ok(Some(kernel::sibling(home_fd)?));
            }
            Ok(Some(sibling))
        }
    }
}

fn with_context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
