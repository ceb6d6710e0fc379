//! Counting open connections per peer, so one client cannot take every connection slot.
//!
//! A TCP peer is its IP address (an IPv6 peer its /64, since one host usually owns the whole
//! prefix). Every unix-socket client is the same peer: behind a reverse proxy that connects
//! over a unix socket (or from 127.0.0.1), all clients share the proxy's one allowance, so the
//! proxy must limit its own clients.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A TCP client, by address (IPv6 by /64 prefix).
    Ip(IpAddr),
    /// Any client of a unix socket.
    Local,
}

impl Peer {
    /// The peer a TCP client address counts as.
    pub fn of(addr: SocketAddr) -> Peer {
        match addr.ip().to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Peer::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Peer::Ip(v4),
        }
    }
}

/// Open connections per peer, with a cap.
pub(crate) struct Peers {
    cap: usize,
    open: Mutex<HashMap<Peer, usize>>,
    refused: AtomicU64,
}

/// Holds one of a peer's connections; dropping it gives the place back.
pub(crate) struct PeerSlot {
    peers: Arc<Peers>,
    peer: Peer,
}

impl Peers {
    pub(crate) fn new(cap: usize) -> Arc<Peers> {
        Arc::new(Peers {
            cap,
            open: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// A place for one more connection of `peer`, or `None` when it already has `cap` open.
    pub(crate) fn admit(self: &Arc<Self>, peer: Peer) -> Option<PeerSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(peer).or_default();
        if *count >= self.cap {
            drop(open);
            let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged on the 1st, 2nd, 4th, 8th… refusal: visible, but a flood cannot flood the log.
            if refused.is_power_of_two() {
                tracing::warn!(
                    "refused a connection from {peer:?}: it already has {} open \
                     ({refused} refused so far)",
                    self.cap
                );
            }
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: self.clone(),
            peer,
        })
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_cap_and_places_come_back() {
        let peers = Peers::new(2);
        let a = Peer::of("10.0.0.1:1000".parse().unwrap());
        let b = Peer::of("10.0.0.2:1000".parse().unwrap());
        let first = peers.admit(a).unwrap();
        let _second = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none());
        assert!(peers.admit(b).is_some(), "another peer is not affected");
        drop(first);
        assert!(peers.admit(a).is_some());
        assert_eq!(peers.refused(), 1);
    }

    #[test]
    fn ipv6_peers_are_their_64_prefix_and_mapped_v4_is_v4() {
        let one = Peer::of("[2001:db8::1]:1".parse().unwrap());
        let two = Peer::of("[2001:db8::ffff:2]:1".parse().unwrap());
        assert_eq!(one, two);
        let mapped = Peer::of("[::ffff:10.0.0.1]:1".parse().unwrap());
        assert_eq!(mapped, Peer::of("10.0.0.1:1".parse().unwrap()));
    }
}
