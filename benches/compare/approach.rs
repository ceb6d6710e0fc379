//! The ways of replacing a running app that the bench puts side by side.

/// What "a reload" means in each column of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Approach {
    /// (a) `baton reload`: the next generation starts on the same sockets, then the old drains.
    Baton,
    /// (b) The app exits and a supervisor starts it again; the new process binds the port.
    Restart,
    /// (c) The same, but the supervisor holds the socket and passes it in (`LISTEN_FDS`), as
    /// systemd socket activation + restart does.
    HeldSocket,
    /// (d) gunicorn's own `kill -HUP`: new workers are forked, old ones stopped gracefully.
    GunicornHup,
    /// (e) The app bound by itself, never reloaded: the throughput reference.
    Alone,
}

impl Approach {
    pub fn label(self) -> &'static str {
        match self {
            Approach::Baton => "(a) baton reload",
            Approach::Restart => "(b) exit + restart, app re-binds",
            Approach::HeldSocket => "(c) exit + restart, socket held",
            Approach::GunicornHup => "(d) gunicorn kill -HUP",
            Approach::Alone => "(e) app alone, no reloads",
        }
    }

    /// Short form for file names.
    pub fn slug(self) -> &'static str {
        match self {
            Approach::Baton => "baton",
            Approach::Restart => "restart",
            Approach::HeldSocket => "held-socket",
            Approach::GunicornHup => "gunicorn-hup",
            Approach::Alone => "alone",
        }
    }

    pub fn reloads(self) -> bool {
        self != Approach::Alone
    }
}
