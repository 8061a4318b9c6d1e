//! Adaptive spinning: when traffic is dense, poll without sleeping for a moment before blocking.
//!
//! On a virtual machine, waking a thread that sleeps in `epoll_wait` costs tens of microseconds
//! (an inter-processor interrupt and a VM exit), which is most of a round trip through the
//! master. When events follow each other closely (a ping-pong, a control loop at kHz rates),
//! polling with a zero timeout for up to `limit` catches the next one without that cost. When
//! they do not (a 100 Hz sensor, an idle master), spinning would only burn CPU, so the master
//! spins only while the recent gaps between the end of its work and the next event average
//! below `limit`. An idle master never spins.

use std::time::{Duration, Instant};

/// Weight of the newest gap in the running average, as a shift (1/8).
const EWMA_SHIFT: u32 = 3;

#[derive(Debug)]
pub(crate) struct Spin {
    limit: Duration,
    /// When the loop last ran out of work (set before a wait, cleared by events).
    idle_since: Option<Instant>,
    /// Running average of the gaps, in nanoseconds.
    gap_ns: u64,
}

impl Spin {
    /// `limit` zero: never spin.
    pub(crate) fn new(limit: Duration) -> Self {
        Spin {
            limit,
            idle_since: None,
            // Start as if traffic were sparse (1 ms apart): a master spins only after some
            // twenty closely spaced events.
            gap_ns: 1_000_000,
        }
    }

    /// The timeout for the next wait: zero (poll) while spinning is worth it, else `blocking`.
    pub(crate) fn timeout(&mut self, blocking: Duration, now: Instant) -> Duration {
        if self.limit.is_zero() || blocking.is_zero() {
            return blocking;
        }
        let since = *self.idle_since.get_or_insert(now);
        let dense = self.gap_ns < self.limit.as_nanos() as u64;
        if dense && now.saturating_duration_since(since) < self.limit {
            Duration::ZERO
        } else {
            blocking
        }
    }

    /// Records what a wait returned.
    pub(crate) fn after_wait(&mut self, events: bool, now: Instant) {
        if !events {
            return;
        }
        if let Some(since) = self.idle_since.take() {
            let gap = now.saturating_duration_since(since).as_nanos() as u64;
            // gap_ns += (gap - gap_ns) / 8, in unsigned steps.
            self.gap_ns = self.gap_ns - (self.gap_ns >> EWMA_SHIFT) + (gap >> EWMA_SHIFT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(100);
    const BLOCK: Duration = Duration::from_secs(1);
    const POLL: Duration = Duration::ZERO;

    /// Feeds `n` rounds of "work ends, the next event comes `gap` later".
    fn rounds(spin: &mut Spin, start: Instant, gap: Duration, n: u32) -> Instant {
        let mut t = start;
        for _ in 0..n {
            let _ = spin.timeout(BLOCK, t);
            t += gap;
            spin.after_wait(true, t);
        }
        t
    }

    #[test]
    fn a_fresh_or_sparse_master_blocks() {
        let t0 = Instant::now();
        let mut spin = Spin::new(LIMIT);
        assert_eq!(spin.timeout(BLOCK, t0), BLOCK, "no history: block");
        let t = rounds(&mut spin, t0, Duration::from_millis(1), 50);
        assert_eq!(spin.timeout(BLOCK, t), BLOCK, "1 kHz traffic: block");
    }

    #[test]
    fn dense_traffic_spins_for_at_most_the_limit_then_blocks() {
        let t0 = Instant::now();
        let mut spin = Spin::new(LIMIT);
        let t = rounds(&mut spin, t0, Duration::from_micros(30), 50);
        assert_eq!(spin.timeout(BLOCK, t), POLL, "30 us gaps: spin");
        spin.after_wait(false, t);
        assert_eq!(spin.timeout(BLOCK, t + Duration::from_micros(99)), POLL);
        assert_eq!(
            spin.timeout(BLOCK, t + Duration::from_micros(100)),
            BLOCK,
            "spun the whole limit: block"
        );
    }

    #[test]
    fn traffic_thinning_out_stops_the_spinning() {
        let t0 = Instant::now();
        let mut spin = Spin::new(LIMIT);
        let t = rounds(&mut spin, t0, Duration::from_micros(20), 50);
        assert_eq!(spin.timeout(BLOCK, t), POLL);
        spin.after_wait(true, t);
        let t = rounds(&mut spin, t, Duration::from_millis(5), 3);
        assert_eq!(spin.timeout(BLOCK, t), BLOCK, "a few long gaps: block");
    }

    #[test]
    fn zero_limit_or_pending_work_passes_the_timeout_through() {
        let t0 = Instant::now();
        let mut off = Spin::new(Duration::ZERO);
        let t = rounds(&mut off, t0, Duration::from_micros(10), 50);
        assert_eq!(off.timeout(BLOCK, t), BLOCK);
        let mut on = Spin::new(LIMIT);
        assert_eq!(on.timeout(POLL, t0), POLL);
    }
}
