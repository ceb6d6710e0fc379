//! The app side of baton: what a Rust server needs to be a good generation.
//!
//! 1. [`listeners::take`] the sockets baton (or systemd) passed, before starting threads;
//! 2. serve them with [`serve::serve`], which stops accepting and drains keep-alive connections
//!    without racing clients when shutdown starts;
//! 3. tell the supervisor with [`notify::ready`].
//!
//! Without baton, [`handoff`] lets the server replace itself under systemd (single-process
//! mode): it starts its successor on the same sockets and hands systemd's main PID over.

pub mod handoff;
pub mod listeners;
pub mod notify;
pub mod peers;
pub mod serve;
