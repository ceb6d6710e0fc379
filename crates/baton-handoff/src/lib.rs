//! The supervisor side of baton: listening sockets, spawning generations the way systemd would,
//! their notify sockets, and the reload/drain lifecycle.

pub mod duration;
pub mod generation;
pub mod listen;
pub mod notify;
pub mod readiness;
pub mod spawn;
pub mod supervisor;
pub mod timefmt;
pub mod upstream;
