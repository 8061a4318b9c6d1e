//! What the bridge counts: every message that does not cross is counted under a reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The bridge's counters, printed on every change of a link and at exit.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages from the master sent to the engine.
    pub out_sent: AtomicU64,
    /// Messages from the master that could not be sent: the engine link was down or its queue
    /// was full.
    pub out_lost: AtomicU64,
    /// Messages from the engine published into the master.
    pub in_sent: AtomicU64,
    /// Messages from the engine that could not be published: the master link was down (the
    /// publisher not ready) or the bridge's queue towards the master was full.
    pub in_lost: AtomicU64,
    /// Engine keys refused: not `PREFIX/TOPIC` with a valid topic name.
    pub in_bad_name: AtomicU64,
    /// Engine messages refused: payload over `--max-payload`.
    pub in_oversized: AtomicU64,
    /// Engine messages refused: a new topic past `--max-topics`.
    pub in_too_many_topics: AtomicU64,
    /// Engine messages on keys that match no `--in` pattern.
    pub in_not_matched: AtomicU64,
    /// Our own messages handed back by the master (not sent out again).
    pub echoes: AtomicU64,
    /// Our own messages handed back by the engine (not brought in again).
    pub engine_echoes: AtomicU64,
    /// Master topics matching `--out` that the engine cannot name (skipped once each).
    pub out_bad_name: AtomicU64,
    /// Times the engine link came up.
    pub engine_connects: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// One `key=value` line of every counter.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "out_sent={} out_lost={} in_sent={} in_lost={} in_bad_name={} in_oversized={} in_too_many_topics={} in_not_matched={} echoes={} engine_echoes={} out_bad_name={} engine_connects={}",
            g(&self.out_sent),
            g(&self.out_lost),
            g(&self.in_sent),
            g(&self.in_lost),
            g(&self.in_bad_name),
            g(&self.in_oversized),
            g(&self.in_too_many_topics),
            g(&self.in_not_matched),
            g(&self.echoes),
            g(&self.engine_echoes),
            g(&self.out_bad_name),
            g(&self.engine_connects),
        )
    }
}
