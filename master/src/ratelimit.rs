//! Repeated warnings, logged at most once a second with how many were left out (as mosquitto
//! and libzmq peers expect of a broker under a flood: the log must not become the attack).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A repeated warning is logged at most this often, with how many times it happened.
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// A warning logged at most once per [`WARN_INTERVAL`].
#[derive(Debug, Default)]
pub struct RateLimited {
    next: Option<Instant>,
    left_out: u64,
}

impl RateLimited {
    /// `Some(n)` when the warning is to be logged now, `n` being how many times it was left out
    /// since it was last logged.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.left_out += 1;
            return None;
        }
        self.next = Some(now + WARN_INTERVAL);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// Most peers tracked at once; past it the quietest are forgotten (a forgotten peer's next
/// warning is logged at once, so a flood from many addresses costs one line per address and
/// second at worst, and the table stays bounded).
const MAX_PEERS: usize = 1024;

/// One [`RateLimited`] per peer (an address) and kind of warning.
#[derive(Debug, Default)]
pub struct PerPeer {
    peers: HashMap<(String, &'static str), RateLimited>,
}

impl PerPeer {
    /// As [`RateLimited::hit`], for warning `kind` about `peer`.
    pub fn hit(&mut self, peer: &str, kind: &'static str, now: Instant) -> Option<u64> {
        if let Some(limit) = self.peers.get_mut(&(peer.to_owned(), kind)) {
            return limit.hit(now);
        }
        if self.peers.len() >= MAX_PEERS {
            // Those whose interval passed would be logged at once anyway.
            self.peers
                .retain(|_, l| l.next.is_some_and(|next| now < next) && l.left_out > 0);
            if self.peers.len() >= MAX_PEERS {
                self.peers.clear();
            }
        }
        let mut limit = RateLimited::default();
        let logged = limit.hit(now);
        self.peers.insert((peer.to_owned(), kind), limit);
        logged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_second_per_peer_and_kind_with_the_count() {
        let t0 = Instant::now();
        let mut p = PerPeer::default();
        assert_eq!(p.hit("10.0.0.1", "refused", t0), Some(0));
        for _ in 0..5 {
            assert_eq!(p.hit("10.0.0.1", "refused", t0), None);
        }
        assert_eq!(p.hit("10.0.0.1", "new name", t0), Some(0));
        assert_eq!(p.hit("10.0.0.2", "refused", t0), Some(0));
        assert_eq!(p.hit("10.0.0.1", "refused", t0 + WARN_INTERVAL), Some(5));
        for i in 0..(2 * MAX_PEERS) {
            p.hit(&format!("peer{i}"), "refused", t0);
        }
        assert!(p.peers.len() <= MAX_PEERS);
    }
}
